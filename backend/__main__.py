from rtserve.server.cli import app

app()
