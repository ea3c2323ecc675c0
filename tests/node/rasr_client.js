// A RASR client in the style of the SIS JavaScript demo: START, 3200-byte
// chunks, END; prints every server message as one JSON line.
// usage: node rasr_client.js URL TOKEN PCM_FILE CONFIG_JSON
const fs = require('fs');
const WebSocket = require('ws');
const [url, token, file, config] = process.argv.slice(2);
const audio = fs.readFileSync(file);
const ws = new WebSocket(url, { headers: { 'X-Auth-Token': token } });
ws.on('open', () => {
  ws.send(JSON.stringify({ command: 'START', config: JSON.parse(config) }));
});
ws.on('message', (data) => {
  const m = JSON.parse(data.toString());
  console.log(JSON.stringify(m));
  if (m.resp_type === 'START') {
    for (let i = 0; i < audio.length; i += 3200) ws.send(audio.subarray(i, i + 3200));
    ws.send(JSON.stringify({ command: 'END', cancel: false }));
  } else if (m.resp_type === 'END' || m.resp_type === 'FATAL_ERROR') {
    ws.close();
  }
});
ws.on('unexpected-response', (req, res) => { console.log(JSON.stringify({ http_status: res.statusCode })); process.exit(3); });
ws.on('error', (e) => { console.error(String(e)); process.exit(2); });
