"""The one evaluator: rationales and predictions scored in both modes, ERASER's metrics, and the
per-epoch diagnostics."""
