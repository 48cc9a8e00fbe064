"""HTTP surfaces: each turns its wire format into job specs and renders results and errors its own way."""
