"""What runs inside an evaluation image: the core_evals CLI, rendering, execution, parsers."""
