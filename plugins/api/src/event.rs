//! The event vocabulary plugins read and compose: the normalized events of every dialect, the
//! gateway's error codes, and the conference requests and replies. These are the protocol
//! crate's own types, re-exported one by one: its codecs (how each dialect reads and writes
//! them) are the gateway's business, not a plugin's.

pub use switchboard_protocol::conference;
pub use switchboard_protocol::{
    Candidate, ConferenceCommand, ConferenceReply, ConferenceRequest, Description, DialectKind,
    ErrorCode, ErrorNotice, Event, IceServers, Join, JoinMode, JsonText, Leave, LeaveReason,
    Opaque, PeerMessage, RoomNotice, SdpKind,
};
