//! WHIP ingest and WHEP playback (RFC 9725 and its egress twin) into the `sfu` plugin:
//! `POST /whip/{room}` publishes an SDP offer into the conference room `room`, `POST
//! /whep/{room}` plays the room; each answers `201 Created` with the SDP answer and the
//! `Location` of its session resource, which takes `PATCH` (trickle ICE) and `DELETE`. Every
//! path also exists under an Ant application (`/{app}/whip/{room}`), whose gate and stream
//! security then apply.
//!
//! A resource is a session of the gateway like a raw peer's (`switchboard.publish` /
//! `switchboard.play`, docs/dialect-spec.md): its requests go through the plugin pipeline, so
//! the conference plugin checks the bearer token as it checks a raw peer's publish or play
//! token (the default application's, or the path's), and the `sfu` plugin lists a WHIP
//! publisher in the room for Ant pages. Everything that costs something (the session caps,
//! reading the body) comes after the checks that cost nothing (application, origin, ids,
//! content type, declared length). See docs/whip-whep.md.
//!
//! # Layout
//! - `whip.rs`: the routes and the HTTP side of each method.
//! - `whip/checks.rs`: the checks before the work, and the refusals.
//! - `whip/resource.rs`: the resource table and the session behind each resource.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{options, post};
use serde::Deserialize;
use switchboard_protocol::MAX_ID_BYTES;
use switchboard_protocol::whip::{SdpFrag, check_offer, valid_id};

use super::ListenerContext;

mod checks;
mod resource;

use checks::{
    Refusal, admit, bearer, body_limit, check_app, check_declared_length, checked_origin, cors,
    has_type, read_text,
};

pub use resource::Endpoint;
use resource::{Opened, Resource};

/// The media types of each body.
const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

pub fn routes(cx: ListenerContext) -> Router {
    // Each path also under an Ant application, as Ant Media Server serves WHIP
    // (`/{app}/whip/{streamId}`): that application's gate and stream security apply.
    let mut router = Router::new();
    for prefix in ["", "/{app}"] {
        router = router
            .route(
                &format!("{prefix}/whip/{{room}}"),
                post(whip_post).options(whip_options),
            )
            .route(
                &format!("{prefix}/whep/{{room}}"),
                post(whep_post).options(whep_options),
            )
            .route(
                &format!("{prefix}/whip/{{room}}/{{id}}"),
                options(whip_resource_options)
                    .patch(whip_patch)
                    .delete(whip_delete),
            )
            .route(
                &format!("{prefix}/whep/{{room}}/{{id}}"),
                options(whep_resource_options)
                    .patch(whep_patch)
                    .delete(whep_delete),
            );
    }
    router.with_state(cx)
}

/// The path of an endpoint (`room`, and `app` under an application) or of a resource (`id`
/// too).
#[derive(Debug, Deserialize)]
struct Target {
    app: Option<String>,
    room: String,
    id: Option<String>,
}

/// Query of `POST /whip/{room}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostQuery {
    /// The stream id the publisher is listed under (Ant pages show and play it); default
    /// `whip-<random>`.
    #[serde(rename = "streamId")]
    stream_id: Option<String>,
}

async fn whip_post(
    path: Path<Target>,
    query: Result<Query<PostQuery>, axum::extract::rejection::QueryRejection>,
    addr: ConnectInfo<SocketAddr>,
    cx: State<ListenerContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let stream_id = match query {
        Ok(Query(q)) => q.stream_id,
        Err(_) => {
            let refusal = Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                "the only query parameter is `streamId`",
            );
            return refusal.respond(Endpoint::Whip, headers.get(header::ORIGIN));
        }
    };
    create(Endpoint::Whip, stream_id, path, addr, cx, headers, body).await
}

async fn whep_post(
    path: Path<Target>,
    addr: ConnectInfo<SocketAddr>,
    cx: State<ListenerContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    create(Endpoint::Whep, None, path, addr, cx, headers, body).await
}

/// `POST`: checks in order of cost, then opens the resource and answers `201 Created`.
async fn create(
    endpoint: Endpoint,
    stream_id: Option<String>,
    Path(Target { app, room, .. }): Path<Target>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(cx): State<ListenerContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let origin = headers.get(header::ORIGIN).cloned();
    let opened = async {
        check_app(&cx, app.as_deref())?;
        let origin = checked_origin(&cx, &headers)?;
        for name in std::iter::once(&room).chain(stream_id.as_ref()) {
            if !valid_id(name) {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_stream_name",
                    format!("rooms and stream ids are 1 to {MAX_ID_BYTES} bytes of [A-Za-z0-9._-]"),
                ));
            }
        }
        if !has_type(&headers, SDP) {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "wrong_content_type",
                format!("the body must be an SDP offer ({SDP})"),
            ));
        }
        let limit = body_limit(&cx);
        check_declared_length(&headers, limit)?;
        // The session caps before the body is read: a place is what a resource holds.
        let permit = admit(&cx, addr)?;
        let offer = read_text(body, limit).await?;
        check_offer(&offer)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "not_sdp", e.to_string()))?;
        let opening = resource::Opening {
            endpoint,
            app,
            room: room.clone(),
            stream_id,
            token: bearer(&headers),
            addr,
            permit,
        };
        let opened = Resource::open(&cx, opening, offer).await?;
        Ok::<_, Refusal>((opened, origin))
    };
    match opened.await {
        Ok((Opened { location, answer }, origin)) => {
            let mut response = (StatusCode::CREATED, answer).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
            if let Ok(location) = HeaderValue::from_str(&location) {
                headers.insert(header::LOCATION, location);
            }
            headers.insert("accept-patch", HeaderValue::from_static(SDPFRAG));
            cors(&mut response, origin.as_ref());
            response
        }
        Err(refusal) => refusal.respond(endpoint, origin.as_ref()),
    }
}

async fn whip_patch(
    path: Path<Target>,
    cx: State<ListenerContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    patch(Endpoint::Whip, path, cx, headers, body).await
}

async fn whep_patch(
    path: Path<Target>,
    cx: State<ListenerContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    patch(Endpoint::Whep, path, cx, headers, body).await
}

/// `PATCH` with a trickle ICE fragment: its candidates go to the media plugin (`204`). An ICE
/// restart (new credentials, or `If-Match: *`) is not supported: `422` (RFC 9725 §4.3).
async fn patch(
    endpoint: Endpoint,
    Path(target): Path<Target>,
    State(cx): State<ListenerContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let origin = headers.get(header::ORIGIN).cloned();
    let patched = async {
        let origin = checked_origin(&cx, &headers)?;
        let resource = Resource::find(endpoint, &target, bearer(&headers).as_deref())?;
        if resource.has_ended() {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "no_such_resource",
                "this session has ended",
            ));
        }
        if !has_type(&headers, SDPFRAG) {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "wrong_content_type_patch",
                format!("a PATCH carries a trickle ICE fragment ({SDPFRAG})"),
            ));
        }
        let limit = body_limit(&cx);
        check_declared_length(&headers, limit)?;
        let text = read_text(body, limit).await?;
        let frag = SdpFrag::decode(&text).map_err(|e| {
            Refusal::new(StatusCode::BAD_REQUEST, "malformed_sdpfrag", e.to_string())
        })?;
        let restart = headers
            .get(header::IF_MATCH)
            .is_some_and(|v| v.as_bytes() == b"*");
        if restart || !resource.same_ice_session(&frag) {
            return Err(Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ice_restart_unsupported",
                "this server takes trickled candidates, not ICE restarts; start a new session",
            ));
        }
        resource.trickle(&cx, &frag).await;
        Ok::<_, Refusal>(origin)
    };
    match patched.await {
        Ok(origin) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            cors(&mut response, origin.as_ref());
            response
        }
        Err(refusal) => refusal.respond(endpoint, origin.as_ref()),
    }
}

async fn whip_delete(
    path: Path<Target>,
    cx: State<ListenerContext>,
    headers: HeaderMap,
) -> Response {
    delete(Endpoint::Whip, path, cx, headers)
}

async fn whep_delete(
    path: Path<Target>,
    cx: State<ListenerContext>,
    headers: HeaderMap,
) -> Response {
    delete(Endpoint::Whep, path, cx, headers)
}

/// `DELETE`: ends the session (the media plugin drops its connection; Ant pages see the
/// publisher leave). `200 OK`.
fn delete(
    endpoint: Endpoint,
    Path(target): Path<Target>,
    State(cx): State<ListenerContext>,
    headers: HeaderMap,
) -> Response {
    let origin = headers.get(header::ORIGIN).cloned();
    let deleted = checked_origin(&cx, &headers).and_then(|origin| {
        Resource::find(endpoint, &target, bearer(&headers).as_deref())?.end();
        Ok(origin)
    });
    match deleted {
        Ok(origin) => {
            let mut response = StatusCode::OK.into_response();
            cors(&mut response, origin.as_ref());
            response
        }
        Err(refusal) => refusal.respond(endpoint, origin.as_ref()),
    }
}

/// `OPTIONS` of an endpoint: the CORS preflight, and `Accept-Post` (RFC 9725 §4.2).
async fn whip_options(cx: State<ListenerContext>, headers: HeaderMap) -> Response {
    preflight(
        Endpoint::Whip,
        &cx,
        &headers,
        ENDPOINT_METHODS,
        ("accept-post", SDP),
    )
}

async fn whep_options(cx: State<ListenerContext>, headers: HeaderMap) -> Response {
    preflight(
        Endpoint::Whep,
        &cx,
        &headers,
        ENDPOINT_METHODS,
        ("accept-post", SDP),
    )
}

/// `OPTIONS` of a resource: the CORS preflight for `PATCH` and `DELETE`.
async fn whip_resource_options(cx: State<ListenerContext>, headers: HeaderMap) -> Response {
    let accept = ("accept-patch", SDPFRAG);
    preflight(Endpoint::Whip, &cx, &headers, RESOURCE_METHODS, accept)
}

async fn whep_resource_options(cx: State<ListenerContext>, headers: HeaderMap) -> Response {
    let accept = ("accept-patch", SDPFRAG);
    preflight(Endpoint::Whep, &cx, &headers, RESOURCE_METHODS, accept)
}

const ENDPOINT_METHODS: &str = "POST, OPTIONS";
const RESOURCE_METHODS: &str = "PATCH, DELETE, OPTIONS";

fn preflight(
    endpoint: Endpoint,
    cx: &ListenerContext,
    headers: &HeaderMap,
    methods: &'static str,
    (name, value): (&'static str, &'static str),
) -> Response {
    let origin = match checked_origin(cx, headers) {
        Ok(origin) => origin,
        Err(refusal) => return refusal.respond(endpoint, headers.get(header::ORIGIN)),
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    cors(&mut response, origin.as_ref());
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    out.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, if-match"),
    );
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    out.insert(header::ALLOW, HeaderValue::from_static(methods));
    out.insert(name, HeaderValue::from_static(value));
    response
}
