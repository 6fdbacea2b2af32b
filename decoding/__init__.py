"""Everything from "tokens in" to "distribution and choice out"."""
