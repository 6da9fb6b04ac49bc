"""Applying the patches, and the one mechanism they share: rebinding a name in every ``vlmeval`` module.

VLMEvalKit spreads its helpers with ``from ..smp import *``, so a function such as ``download_file`` is
bound in dozens of module namespaces; replacing it in ``vlmeval.smp.file`` alone would change nothing.
"""

from __future__ import annotations

import sys


def rebind(name: str, original: object, replacement: object) -> int:
    """Bind ``replacement`` wherever a loaded ``vlmeval`` module binds ``original`` as ``name``; returns how often.

    Modules imported later (vlmeval imports a few lazily) copy the name from an already rebound namespace.
    """
    count = 0
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "vlmeval" or module_name.startswith("vlmeval.")):
            continue
        if vars(module).get(name) is original:
            setattr(module, name, replacement)
            count += 1
    if count == 0:
        raise RuntimeError(f"evals_vlmeval: {name} was not found in vlmeval; this VLMEvalKit version is not supported")
    return count


def apply() -> None:
    """Apply every patch."""
    from evals_vlmeval import fidelity, judge, lmudata, records  # noqa: PLC0415 (vlmeval must be importable first)

    notes = [lmudata.apply()]
    notes.append(fidelity.apply())
    notes.append(judge.apply())
    notes.append(records.apply())
    print(f"evals_vlmeval: {'; '.join(notes)}", file=sys.stderr, flush=True)
