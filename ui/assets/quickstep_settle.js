() => { window.ntBars?.settle(); }
