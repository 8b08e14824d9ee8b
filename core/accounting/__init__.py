"""Exact accounting from specs: cache bytes, fixed-size state, bytes read, FLOPs, parameters, weights, memory
plans, rooflines, the V4 claims, formulas and sentences. No torch; imports only `core.model`."""
