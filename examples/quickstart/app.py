"""A small Flask app whose database schema is managed by Flask-Migrate.

Run the demo from the repository root with ``bash scripts/demo.sh``.
"""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_migrate import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
    "DATABASE_URL", "sqlite:///" + os.path.join(os.path.dirname(__file__), "demo.db")
)
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Author(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(100), nullable=False)


class Book(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    author_id = db.Column(db.ForeignKey("author.id"), nullable=False)


@app.cli.command("seed")
def seed() -> None:
    """Add an author and a book, to show the migrated schema is usable."""
    author = Author(name="Ursula K. Le Guin")
    db.session.add(author)
    db.session.add(Book(title="The Dispossessed", author_id=1))
    db.session.commit()
    print(f"{db.session.query(Book).count()} book(s) in the database")
