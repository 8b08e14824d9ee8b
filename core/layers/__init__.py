"""Real torch layers (attention designs, recurrent layers, decode kernels, cache quantizers). Imports only
`core.model`; each layer's cache or state is an explicit object passed in and returned."""
