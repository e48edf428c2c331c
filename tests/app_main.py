"""The app as NiceGUI's `user` fixture runs it: settings from the test's environment."""

from nicegui import ui

from app.context import Lantern
from app.main import build
from app.settings import Settings

build(Lantern.create(Settings()))
ui.run(storage_secret="test-secret")
