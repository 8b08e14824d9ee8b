"""The runs behind each lesson: real weights, tiny models, experiments and measurements. Imports
`core.model`, `core.accounting` and `core.layers`."""
