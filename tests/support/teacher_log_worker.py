"""A distiller-like consumer process for the crash test: makes each batch durable, then commits.

    python -m tests.support.teacher_log_worker CONFIG_JSON GROUP OUT_FILE BATCHES_BEFORE_HANG

After ``BATCHES_BEFORE_HANG`` committed batches it polls one more, prints ``MIDBATCH`` and hangs
without committing it, so the test can SIGKILL it with a batch in hand.
"""

from __future__ import annotations

import os
import sys
import time

from distillserve.config import TeacherLogConfig
from distillserve.teacher_log.consumer import TeacherLogConsumer


def main() -> None:
    cfg = TeacherLogConfig.model_validate_json(sys.argv[1])
    group, out_path, before_hang = sys.argv[2], sys.argv[3], int(sys.argv[4])
    consumer = TeacherLogConsumer(cfg, group)
    committed = 0
    with open(out_path, "a") as out:
        while True:
            batch = consumer.poll_batch(max_records=40, timeout_s=2.0)
            if not batch:
                continue
            if committed == before_hang:
                print("MIDBATCH", len(batch), flush=True)
                time.sleep(600)
            # The batch's effect (here: the ids it carried) is durable before the commit.
            out.write("".join(f"{r.record.request_id}\n" for r in batch.records))
            out.flush()
            os.fsync(out.fileno())
            consumer.commit(batch)
            committed += 1
            print("COMMITTED", len(batch), flush=True)


if __name__ == "__main__":
    main()
