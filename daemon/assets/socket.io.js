/*!
 * Switchboard's own minimal socket.io client (served at /socket.io/socket.io.js).
 *
 * This is NOT the official socket.io-client. It is a small client written for
 * Switchboard's demo pages: engine.io protocol v4 over WebSocket only (no HTTP
 * long-polling), socket.io protocol v5, default namespace "/" only, JSON
 * payloads only (no binary). The gateway also accepts the official
 * socket.io-client v2, v3 and v4 (polling and websocket), so any page may load
 * that instead.
 *
 * API (a subset of socket.io-client v4):
 *   var socket = io(url?, opts?);   // also io.connect(url?, opts?)
 *   socket.on(ev, fn) / once / off;  socket.emit(ev, ...jsonArgs[, ackFn]);
 *   socket.connected, socket.id, socket.connect(), socket.disconnect() / close()
 * opts: path ("/socket.io/"), query (object or "a=b" string), auth (object or
 *   function(cb)), reconnection (true), reconnectionAttempts (Infinity),
 *   reconnectionDelay (1000), reconnectionDelayMax (5000), timeout (20000),
 *   autoConnect (true).
 * Local events: "connect", "connect_error" (Error with .message and .data),
 *   "disconnect" (reason: "io server disconnect", "io client disconnect",
 *   "transport close", "ping timeout"), "reconnect_failed", and server events.
 */
(function (root) {
  'use strict';

  // Engine.io v4 packet types (first character of a text frame).
  var EIO_OPEN = '0', EIO_CLOSE = '1', EIO_PING = '2', EIO_PONG = '3', EIO_MESSAGE = '4';
  // socket.io v5 packet types (first character after the engine.io "4").
  var SIO_CONNECT = '0', SIO_DISCONNECT = '1', SIO_EVENT = '2', SIO_ACK = '3', SIO_CONNECT_ERROR = '4';
  // Events that only ever fire locally and can never be sent to the server.
  var RESERVED = { connect: 1, connect_error: 1, disconnect: 1, disconnecting: 1, newListener: 1, removeListener: 1 };

  // Builds the ws(s):// URL from the page origin, the given url, opts.path and opts.query.
  function buildUrl(url, opts) {
    var base = (typeof location !== 'undefined' && location.href) || undefined;
    var u = new URL(url || (typeof location !== 'undefined' ? location.origin : 'http://localhost'), base);
    var params = new URLSearchParams(u.search);
    var q = opts.query;
    if (typeof q === 'string') new URLSearchParams(q).forEach(function (v, k) { params.set(k, v); });
    else if (q) Object.keys(q).forEach(function (k) { params.set(k, q[k]); });
    params.set('EIO', '4');
    params.set('transport', 'websocket');
    var path = opts.path || '/socket.io/';
    if (path.charAt(path.length - 1) !== '/') path += '/';
    var scheme = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
    // A path in the url would name a namespace; only "/" is supported, so it is ignored.
    return scheme + '//' + u.host + path + '?' + params.toString();
  }

  function Socket(url, opts) {
    this.opts = opts || {};
    this.url = buildUrl(url, this.opts);
    this.connected = false;
    this.disconnected = true;
    this.id = undefined;
    this._handlers = {};     // event name -> [fn]
    this._buffer = [];       // frames emitted before "connect", flushed on connect
    this._acks = {};         // ack id -> callback for our own emits
    this._ackId = 0;
    this._attempts = 0;      // reconnection attempts since the last successful connect
    this._ws = null;
    this._watchdog = null;   // closes a silent transport (no handshake / no ping)
    this._retryTimer = null;
    this._stopped = false;   // true after disconnect(), a server disconnect or a refused connect
    if (this.opts.autoConnect !== false) this.connect();
  }

  // ---- local listeners -------------------------------------------------------
  Socket.prototype.on = function (ev, fn) {
    (this._handlers[ev] = this._handlers[ev] || []).push(fn);
    return this;
  };
  Socket.prototype.addEventListener = Socket.prototype.addListener = Socket.prototype.on;
  Socket.prototype.once = function (ev, fn) {
    var self = this;
    function wrapper() { self.off(ev, wrapper); fn.apply(self, arguments); }
    wrapper.fn = fn;
    return this.on(ev, wrapper);
  };
  Socket.prototype.off = function (ev, fn) {
    if (ev === undefined) { this._handlers = {}; return this; }
    if (fn === undefined) { delete this._handlers[ev]; return this; }
    this._handlers[ev] = (this._handlers[ev] || []).filter(function (h) { return h !== fn && h.fn !== fn; });
    return this;
  };
  Socket.prototype.removeListener = Socket.prototype.removeEventListener = Socket.prototype.off;
  Socket.prototype.removeAllListeners = function (ev) { return this.off(ev); };
  Socket.prototype.listeners = function (ev) { return (this._handlers[ev] || []).slice(); };
  // Fires a local event; a throwing listener is reported but does not break the client.
  Socket.prototype._fire = function (ev) {
    var args = Array.prototype.slice.call(arguments, 1), self = this;
    (this._handlers[ev] || []).slice().forEach(function (fn) {
      try { fn.apply(self, args); } catch (e) { setTimeout(function () { throw e; }); }
    });
  };

  // ---- sending ---------------------------------------------------------------
  // emit(event, ...args[, ack]): JSON arguments; a trailing function gets the server's ack.
  Socket.prototype.emit = function (ev) {
    if (RESERVED[ev]) throw new Error('"' + ev + '" is a reserved event name');
    var args = Array.prototype.slice.call(arguments), id = '';
    if (typeof args[args.length - 1] === 'function') {
      id = String(this._ackId++);
      this._acks[id] = args.pop();
    }
    var frame = EIO_MESSAGE + SIO_EVENT + id + JSON.stringify(args);
    if (this.connected) this._ws.send(frame); else this._buffer.push(frame);
    return this;
  };
  Socket.prototype.send = function () {
    return this.emit.apply(this, ['message'].concat(Array.prototype.slice.call(arguments)));
  };

  // ---- connection lifecycle ----------------------------------------------------
  Socket.prototype.connect = Socket.prototype.open = function () {
    if (this._ws) return this;
    var self = this, ws;
    this._stopped = false;
    clearTimeout(this._retryTimer);
    try { ws = new WebSocket(this.url); } catch (e) { this._transportGone('websocket error', e); return this; }
    this._ws = ws;
    ws.onopen = function () { self._arm(self.opts.timeout || 20000); };
    ws.onmessage = function (e) {
      if (ws !== self._ws || typeof e.data !== 'string') return; // binary frames are not supported
      try { self._onFrame(e.data); } catch (err) { if (typeof console !== 'undefined') console.warn('socket.io: bad frame', err); }
    };
    ws.onerror = function () { /* onclose follows and does the work */ };
    ws.onclose = function () { if (ws === self._ws) self._transportGone('transport close'); };
    return this;
  };

  Socket.prototype.disconnect = Socket.prototype.close = function () {
    var wasConnected = this.connected;
    if (wasConnected) this._ws.send(EIO_MESSAGE + SIO_DISCONNECT);
    this._shutdown();
    if (wasConnected) this._fire('disconnect', 'io client disconnect');
    return this;
  };

  // Stops for good: no reconnection until connect() is called again.
  Socket.prototype._shutdown = function () {
    this._stopped = true;
    clearTimeout(this._retryTimer);
    this._closeTransport();
  };

  Socket.prototype._closeTransport = function () {
    var ws = this._ws;
    this._ws = null;
    this.connected = false;
    this.disconnected = true;
    clearTimeout(this._watchdog);
    if (ws) { ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null; try { ws.close(); } catch (e) { /* already closed */ } }
  };

  // Closes the transport if nothing arrives within ms (no open packet, no ping).
  Socket.prototype._arm = function (ms) {
    var self = this;
    clearTimeout(this._watchdog);
    this._watchdog = setTimeout(function () { self._transportGone('ping timeout'); }, ms);
  };

  // The WebSocket closed or went silent: report it and schedule a reconnection.
  Socket.prototype._transportGone = function (reason, cause) {
    var wasConnected = this.connected;
    this._closeTransport();
    if (wasConnected) {
      this._fire('disconnect', reason);
    } else {
      var err = new Error(reason === 'ping timeout' ? 'timeout' : 'websocket error');
      err.description = cause;
      this._fire('connect_error', err);
    }
    if (this._stopped || this.opts.reconnection === false) return;
    var max = this.opts.reconnectionAttempts === undefined ? Infinity : this.opts.reconnectionAttempts;
    if (this._attempts >= max) { this._fire('reconnect_failed'); return; }
    var delay = Math.min((this.opts.reconnectionDelay || 1000) * Math.pow(2, this._attempts),
      this.opts.reconnectionDelayMax || 5000);
    this._attempts++;
    var self = this;
    this._retryTimer = setTimeout(function () { if (!self._stopped) self.connect(); }, delay);
  };

  // ---- receiving -----------------------------------------------------------------
  Socket.prototype._onFrame = function (data) {
    var type = data.charAt(0), self = this;
    if (type === EIO_OPEN) {
      var hs = JSON.parse(data.slice(1));
      this._pingWindow = (hs.pingInterval || 25000) + (hs.pingTimeout || 20000);
      this._arm(this._pingWindow);
      var auth = this.opts.auth;
      var sendConnect = function (a) { if (self._ws) self._ws.send(EIO_MESSAGE + SIO_CONNECT + (a ? JSON.stringify(a) : '')); };
      if (typeof auth === 'function') auth(sendConnect); else sendConnect(auth);
    } else if (type === EIO_PING) {
      this._arm(this._pingWindow);
      this._ws.send(EIO_PONG);
    } else if (type === EIO_CLOSE) {
      this._transportGone('transport close');
    } else if (type === EIO_MESSAGE) {
      this._onPacket(data.slice(1));
    } // "3" pong and "6" noop need nothing
  };

  Socket.prototype._onPacket = function (p) {
    var type = p.charAt(0), rest = p.slice(1), self = this;
    if (rest.charAt(0) === '/') return; // another namespace: not ours
    var m = /^(\d*)([\s\S]*)$/.exec(rest), id = m[1], body = m[2] ? JSON.parse(m[2]) : undefined;
    if (type === SIO_CONNECT) {
      this.id = body && body.sid;
      this.connected = true;
      this.disconnected = false;
      this._attempts = 0;
      this._fire('connect');
      var queued = this._buffer;
      this._buffer = [];
      queued.forEach(function (f) { if (self.connected) self._ws.send(f); else self._buffer.push(f); });
    } else if (type === SIO_EVENT && Array.isArray(body)) {
      if (id !== '') { // the server wants an ack: pass a callback as last argument
        var done = false;
        body.push(function () {
          if (done || !self._ws) return;
          done = true;
          self._ws.send(EIO_MESSAGE + SIO_ACK + id + JSON.stringify(Array.prototype.slice.call(arguments)));
        });
      }
      this._fire.apply(this, body);
    } else if (type === SIO_ACK && this._acks[id]) {
      var fn = this._acks[id];
      delete this._acks[id];
      fn.apply(this, body || []);
    } else if (type === SIO_DISCONNECT) {
      var was = this.connected;
      this._shutdown();
      if (was) this._fire('disconnect', 'io server disconnect');
    } else if (type === SIO_CONNECT_ERROR) {
      var err = new Error((body && body.message) || 'connect error');
      err.data = body && body.data;
      this._shutdown(); // refused by the server (e.g. room full): do not retry
      this._fire('connect_error', err);
    }
  };

  function io(url, opts) {
    if (typeof url === 'object' && url !== null) { opts = url; url = undefined; }
    return new Socket(url, opts);
  }
  io.connect = io;
  io.Socket = Socket;
  io.protocol = 5;
  io.switchboard = true; // lets pages tell this client from the official one
  root.io = io;
})(typeof self !== 'undefined' ? self : typeof window !== 'undefined' ? window : globalThis);
