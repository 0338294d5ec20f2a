// AudioWorklet: microphone samples -> 16 kHz int16 chunks posted to the page.
//
// With an AudioContext at 16 kHz the browser has already resampled (pass-through here).
// Otherwise (a browser that cannot run the microphone into a 16 kHz context) this resamples
// itself: a 63-tap Hann-windowed sinc low-pass at 0.45 x 16 kHz, then linear interpolation
// at the 16 kHz sample times. Float samples become int16 as round(x * 32768), clamped.
"use strict";

class KwsCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.target = o.targetRate || 16000;
    this.chunk = o.chunkSamples || 1600;
    this.step = sampleRate / this.target; // input samples per output sample
    this.buf = new Int16Array(this.chunk);
    this.n = 0;
    if (this.step !== 1) {
      const taps = 63, fc = 0.45 * this.target / sampleRate, h = new Float32Array(taps);
      let sum = 0;
      for (let i = 0; i < taps; i++) {
        const m = i - (taps - 1) / 2;
        const sinc = m === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * m) / (Math.PI * m);
        h[i] = sinc * (0.5 - 0.5 * Math.cos(2 * Math.PI * i / (taps - 1)));
        sum += h[i];
      }
      for (let i = 0; i < taps; i++) h[i] /= sum;
      this.h = h;
      this.ring = new Float32Array(taps);
      this.ringPos = 0;
      this.prev = 0;      // last filtered sample
      this.t = 0;         // position of the next output between prev (0) and the next (1)
    }
  }

  emit(x, endTime) {
    let v = Math.round(x * 32768);
    if (v > 32767) v = 32767; else if (v < -32768) v = -32768;
    this.buf[this.n++] = v;
    if (this.n === this.chunk) {
      this.port.postMessage({samples: this.buf, endTime}, [this.buf.buffer]);
      this.buf = new Int16Array(this.chunk);
      this.n = 0;
    }
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    if (this.step === 1) {
      for (let i = 0; i < ch.length; i++) this.emit(ch[i], currentTime + (i + 1) / sampleRate);
      return true;
    }
    const taps = this.h.length;
    for (let i = 0; i < ch.length; i++) {
      this.ring[this.ringPos] = ch[i];
      this.ringPos = (this.ringPos + 1) % taps;
      let y = 0;
      for (let k = 0; k < taps; k++) y += this.h[k] * this.ring[(this.ringPos + k) % taps];
      while (this.t <= 1) {   // outputs falling between the previous and this filtered sample
        this.emit(this.prev + (y - this.prev) * this.t, currentTime + (i + 1) / sampleRate);
        this.t += this.step;
      }
      this.t -= 1;
      this.prev = y;
    }
    return true;
  }
}

registerProcessor("kws-capture", KwsCapture);
