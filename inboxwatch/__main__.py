from inboxwatch.cli.main import run

run()
