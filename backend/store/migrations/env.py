from alembic import context

from rtserve.server.store.db import make_engine
from rtserve.server.store.models import Base

url = context.config.get_main_option("sqlalchemy.url")
if url is None:  # set by rtserve.server.store.db.migrate, the only caller
    raise RuntimeError("alembic config has no sqlalchemy.url")
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
