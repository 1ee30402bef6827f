"""Ask every child of the worker: ``python ask.py`` sends a few tasks at once and prints what
each child answered (its pid, the greeting it read, its SMTP host and database URL)."""

import os

from celery import Celery

broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
client = Celery(broker=broker, backend=broker)
results = [client.send_task("tasks.greet", args=["world"]) for _ in range(6)]
answers = {}
for result in results:
    answer = result.get(timeout=20)
    answers[answer["pid"]] = answer
for pid, answer in sorted(answers.items()):
    print(f"child {pid} ({answer['role']}): {answer['greeting']!r}, smtp {answer['smtp']}, "
          f"db {answer['db']}")
