// The seed tutorial's relay (medialan/WebRTC_SimpleP2P app.js) on express 4 + socket.io 4: the
// baseline Switchboard is measured against in bench/run.sh. Its forwarding is the tutorial's,
// line for line, with one change so many pairs can run at once: the two peer slots are per room
// (the handshake query `room`) instead of global. Usage: node app.js PORT [HOST]
var express = require("express");
var { Server } = require("socket.io");

var port = Number(process.argv[2] || 7001);
var host = process.argv[3] || "127.0.0.1";

var app = express();
app.use(express.static(__dirname + "/static/"));
// allowEIO3: the tutorial's own socket.io 2 clients (socket.io-client 2.x) are served too, so
// they can be compared on the same relay; socket.io 4 clients are unaffected.
var SocketServer = new Server(
    app.listen(port, host, function () {
        console.log("node relay listening on " + host + ":" + port);
    }),
    { allowEIO3: true }
);

// room -> { PeerASockIO, PeerBSockIO }
var Rooms = new Map();

SocketServer.on("connection", function (socket) {
    var name = String(socket.handshake.query.room || "simplep2p");
    var room = Rooms.get(name);
    if (!room) {
        room = { PeerASockIO: null, PeerBSockIO: null };
        Rooms.set(name, room);
    }
    if (room.PeerASockIO != null && room.PeerBSockIO != null) return;
    if (room.PeerASockIO == null) room.PeerASockIO = socket;
    else room.PeerBSockIO = socket;

    socket.on("disconnect", function () {
        if (socket == room.PeerASockIO) room.PeerASockIO = null;
        if (socket == room.PeerBSockIO) room.PeerBSockIO = null;
        if (room.PeerASockIO == null && room.PeerBSockIO == null && Rooms.get(name) === room)
            Rooms.delete(name);
    });

    socket.on("msg", function (msg) {
        if (room.PeerASockIO == null || room.PeerBSockIO == null) return;

        var remSock = room.PeerBSockIO;
        if (socket == room.PeerBSockIO) remSock = room.PeerASockIO;
        remSock.emit("msg", msg);
    });
});
