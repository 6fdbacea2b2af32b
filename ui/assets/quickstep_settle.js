(...shown) => window.ntBars ? window.ntBars.settle(shown) : []
