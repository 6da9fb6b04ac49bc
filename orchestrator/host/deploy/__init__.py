"""Model servers started with a run: each type's command line (``commands``) and, per executor, their life."""
