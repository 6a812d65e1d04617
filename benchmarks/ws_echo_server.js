// A fast WebSocket echo server (Node's `ws` package): the bar for ws_echo.py.
// Usage: node ws_echo_server.js PORT   (prints "ready PORT" once listening on 127.0.0.1)
const { WebSocketServer } = require("ws");
const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on("listening", () => console.log(`ready ${wss.address().port}`));
process.on("SIGTERM", () => process.exit(0));
