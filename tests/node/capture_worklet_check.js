// Runs the console's capture worklet (crates/sisd/console/capture-worklet.js)
// outside a browser: the AudioWorklet globals it uses are provided here, a
// tone is fed at the given input rate in 128-sample render quanta, and what
// it posts is measured. Prints one JSON object; test_console.py decides.
//
// usage: node capture_worklet_check.js WORKLET_JS INPUT_RATE
const fs = require('fs');
const vm = require('vm');

const [file, rateArg] = process.argv.slice(2);
const inputRate = Number(rateArg);

function run(freq, seconds, channels) {
  let Processor = null;
  const posted = [];
  const port = { onmessage: null, postMessage: (m) => posted.push(m) };
  class AudioWorkletProcessor {
    constructor() {
      this.port = port;
    }
  }
  const sandbox = {
    sampleRate: inputRate,
    AudioWorkletProcessor,
    registerProcessor: (name, cls) => {
      Processor = cls;
    },
    Math,
    Float32Array,
    Int16Array,
  };
  vm.runInNewContext(fs.readFileSync(file, 'utf8'), sandbox);
  const p = new Processor({ processorOptions: { frameMs: 100 } });
  const total = Math.round(inputRate * seconds);
  for (let at = 0; at < total; at += 128) {
    const n = Math.min(128, total - at);
    const chans = [];
    for (let c = 0; c < channels; c++) {
      const ch = new Float32Array(n);
      for (let i = 0; i < n; i++) ch[i] = 0.5 * Math.sin((2 * Math.PI * freq * (at + i)) / inputRate);
      chans.push(ch);
    }
    p.process([chans]);
  }
  port.onmessage({ data: 'flush' });
  const frames = posted.filter((m) => m !== 'flushed').map((m) => new Int16Array(m.pcm));
  const samples = frames.reduce((a, f) => a + f.length, 0);
  const pcm = new Int16Array(samples);
  let at = 0;
  for (const f of frames) {
    pcm.set(f, at);
    at += f.length;
  }
  // the tone's amplitude in the output (away from the filter's start-up),
  // by correlation with the tone at 16 kHz
  let re = 0;
  let im = 0;
  const from = 1600;
  const to = Math.min(pcm.length, Math.round(16000 * seconds) - 1600);
  for (let i = from; i < to; i++) {
    re += (pcm[i] / 32768) * Math.cos((2 * Math.PI * freq * i) / 16000);
    im += (pcm[i] / 32768) * Math.sin((2 * Math.PI * freq * i) / 16000);
  }
  const amplitude = (2 * Math.hypot(re, im)) / Math.max(1, to - from);
  let peak = 0;
  for (let i = from; i < to; i++) peak = Math.max(peak, Math.abs(pcm[i] / 32768));
  return {
    frames: frames.length,
    frame_bytes: frames.slice(0, -1).map((f) => f.byteLength),
    last_frame_bytes: frames.length ? frames[frames.length - 1].byteLength : 0,
    samples,
    amplitude,
    peak,
    flushed: posted[posted.length - 1] === 'flushed',
  };
}

console.log(
  JSON.stringify({
    // 1 kHz, stereo: passes at half scale
    speech_band: run(1000, 2.05, 2),
    // 11 kHz: above what 16 kHz can carry; the low-pass keeps it from
    // folding back into the speech band as a 5 kHz alias
    above_nyquist: run(11000, 2.05, 1),
  }),
);
