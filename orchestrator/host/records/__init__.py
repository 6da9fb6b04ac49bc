"""Run records: kept on disk (``store``), shown (``status``, ``report``), followed (``follow``), their results read."""
