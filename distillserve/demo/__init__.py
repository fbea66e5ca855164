"""``distillserve demo``: the whole learning loop on one machine, with a live view and a report."""
