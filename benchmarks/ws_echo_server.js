// A fast WebSocket echo server (Node's `ws` package): the bar for ws_echo.py, and the
// target of connections.py --target node.
// Usage: node ws_echo_server.js PORT [PROCESSES]
// Prints "ready PORT" once listening on 127.0.0.1. With PROCESSES > 1, a cluster: the
// primary accepts and hands each connection to one of PROCESSES workers in turn, so
// the connections are spread over that many processes' open-file limits.
const cluster = require("node:cluster");
const { WebSocketServer } = require("ws");
const port = Number(process.argv[2] || 0);
const processes = Number(process.argv[3] || 1);

function serve(onListening) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  wss.on("listening", () => onListening(wss.address().port));
}

if (processes <= 1) {
  serve((p) => console.log(`ready ${p}`));
  process.on("SIGTERM", () => process.exit(0));
} else if (cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let listening = 0;
  for (let i = 0; i < processes; i++) {
    cluster.fork().on("listening", (address) => {
      listening += 1;
      if (listening === processes) console.log(`ready ${address.port}`);
    });
  }
  const stop = () => {
    for (const worker of Object.values(cluster.workers)) worker.process.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  cluster.on("exit", (worker, code, signal) => {
    if (signal !== "SIGTERM") stop(); // a worker died: no half-served benchmark
  });
} else {
  serve(() => {});
  process.on("disconnect", () => process.exit(0)); // the primary is gone
  process.on("SIGTERM", () => process.exit(0));
}
