(...shown) => window.ntBars ? window.ntBars.apply(shown) : []
