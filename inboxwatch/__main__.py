from inboxwatch.cli import run

run()
