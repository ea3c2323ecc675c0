// A real-time TTS client with ws: START with the text and config, the binary
// audio messages appended to OUT_FILE, every text message printed as one
// JSON line; closes on END, ERROR or FATAL_ERROR.
// usage: node rtts_client.js URL TOKEN TEXT CONFIG_JSON OUT_FILE
const fs = require('fs');
const WebSocket = require('ws');
const [url, token, text, config, out] = process.argv.slice(2);
fs.writeFileSync(out, Buffer.alloc(0));
const ws = new WebSocket(url, { headers: { 'X-Auth-Token': token } });
ws.on('open', () => {
  ws.send(JSON.stringify({ command: 'START', text, config: JSON.parse(config) }));
});
ws.on('message', (data, isBinary) => {
  if (isBinary) {
    fs.appendFileSync(out, data);
    return;
  }
  const m = JSON.parse(data.toString());
  console.log(JSON.stringify(m));
  if (['END', 'ERROR', 'FATAL_ERROR'].includes(m.resp_type)) ws.close();
});
ws.on('close', (code) => { console.log(JSON.stringify({ close: code })); });
ws.on('unexpected-response', (req, res) => { console.log(JSON.stringify({ http_status: res.statusCode })); process.exit(3); });
ws.on('error', (e) => { console.error(String(e)); process.exit(2); });
