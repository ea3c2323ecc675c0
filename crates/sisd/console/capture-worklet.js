// The microphone capture of the live page, on the audio rendering thread:
// the input (any rate the AudioContext runs at) mixed to mono, low-passed
// below 8 kHz, resampled to 16 kHz by linear interpolation and converted
// to 16-bit little-endian PCM, posted in frames of `frameMs` (an
// ArrayBuffer each, transferred) with the frame's peak level.
// A message 'flush' posts what is left (padded to 10 ms, the smallest frame
// SIS takes) and then 'flushed'.

const OUT_RATE = 16000;
const TAPS = 31;

// A windowed-sinc low-pass (Hann window) with its cut-off at `cutoff`
// (a fraction of the input rate), normalised to unity gain.
function lowPass(cutoff) {
  const h = new Float32Array(TAPS);
  const mid = (TAPS - 1) / 2;
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (TAPS - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < TAPS; i++) h[i] /= sum;
  return h;
}

class Pcm16kCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = (options.processorOptions && options.processorOptions.frameMs) || 100;
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    this.filter = this.step > 1 ? lowPass(7200 / sampleRate) : null;
    this.history = new Float32Array(TAPS);
    this.hpos = 0;
    this.t = -1; // index of the last filtered input sample
    this.prev = 0; // the filtered sample before it
    this.next = 0; // input-time of the next output sample
    this.frameLen = (OUT_RATE * frameMs) / 1000;
    this.frame = new Int16Array(this.frameLen);
    this.fill = 0;
    this.peak = 0;
    this.port.onmessage = (e) => {
      if (e.data === 'flush') {
        if (this.fill > 0) {
          const n = Math.max(this.fill, OUT_RATE / 100);
          const last = new Int16Array(n);
          last.set(this.frame.subarray(0, this.fill));
          this.port.postMessage({ pcm: last.buffer, peak: this.peak }, [last.buffer]);
          this.fill = 0;
        }
        this.port.postMessage('flushed');
      }
    };
  }

  filtered(x) {
    if (!this.filter) return x;
    this.history[this.hpos] = x;
    this.hpos = (this.hpos + 1) % TAPS;
    let y = 0;
    for (let i = 0, j = this.hpos; i < TAPS; i++, j = (j + 1) % TAPS) y += this.filter[i] * this.history[j];
    return y;
  }

  emit(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    const a = Math.abs(s);
    if (a > this.peak) this.peak = a;
    if (this.fill === this.frameLen) {
      const out = this.frame;
      this.port.postMessage({ pcm: out.buffer, peak: this.peak }, [out.buffer]);
      // (transferred: `out` is empty now)
      this.frame = new Int16Array(this.frameLen);
      this.fill = 0;
      this.peak = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const n = input[0].length;
    for (let i = 0; i < n; i++) {
      let x = 0;
      for (let c = 0; c < input.length; c++) x += input[c][i];
      const cur = this.filtered(x / input.length);
      this.t += 1;
      // every output instant in (t - 1, t]: interpolate between prev and cur
      while (this.next <= this.t) {
        const frac = this.next - (this.t - 1);
        this.emit(this.prev + (cur - this.prev) * frac);
        this.next += this.step;
      }
      this.prev = cur;
    }
    return true;
  }
}

registerProcessor('pcm16k-capture', Pcm16kCapture);
