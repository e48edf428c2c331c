"""Settings: your account and API tokens; for admins also users, providers, prices and limits."""

from __future__ import annotations

from functools import partial

from nicegui import ui

from app import auth
from app.context import Lantern
from app.pages.frame import frame
from app.pages.settings_mcp import McpSection
from app.pages.settings_sources import SourcesSection
from components.buttons import dialog_actions, icon_button
from services.accounts.passwords import MIN_LENGTH
from services.accounts.service import TOKEN_LIFETIMES_DAYS, Principal
from services.core import pricing
from services.core.errors import LanternError
from storage.auth_store import aware
from storage.models import utcnow


def register(lantern: Lantern) -> None:
    """The /settings route."""

    @ui.page("/settings", title="Lantern · Settings")
    async def settings() -> None:
        await SettingsPage(lantern).build()

    del settings


class SettingsPage:
    """Sections by role: everyone sees their account; admins manage the shared host."""

    def __init__(self, lantern: Lantern) -> None:
        self.lantern = lantern
        auth.current_principal()  # refuse to build for an ended login

    @property
    def principal(self) -> Principal:
        """The user, re-checked at every use: a click after logout or a password reset raises NotAuthenticated."""
        return auth.current_principal()

    async def build(self) -> None:
        """Draw the sections."""
        await self.lantern.registry.list_models_live()  # the servers' own lists (cached), for the pickers
        with frame("Settings"):
            self._account()
            if auth.shared():
                with ui.card().classes("w-full").mark("tokens-section"):
                    ui.label("API tokens").classes("text-lg font-semibold")
                    ui.label("For scripts: send `Authorization: Bearer <token>`. A token is shown once, "
                             "when it is created; revoke it here when it is no longer needed.") \
                        .classes("text-sm opacity-70")
                    with ui.row().classes("items-end gap-2"):
                        name = ui.input("Token name", placeholder="e.g. nightly report").props("dense outlined") \
                            .mark("token-name")
                        lifetime = ui.select({0: "until revoked", **{d: f"{d} days" for d in TOKEN_LIFETIMES_DAYS}},
                                             value=90, label="Expires after").props("dense outlined") \
                            .classes("w-40").mark("token-lifetime")
                        record = ui.checkbox("Record its /v1 calls in History", value=True) \
                            .mark("token-record")
                        ui.button("Create token", icon="key",
                                  on_click=lambda: self._create_token(name, lifetime, record)) \
                            .props("unelevated").mark("token-create")
                    self.token_list = ui.column().classes("w-full gap-1")
                await self._show_tokens()
            if self.principal.is_admin and auth.shared():
                with ui.card().classes("w-full").mark("users-section"):
                    with ui.row().classes("w-full items-center"):
                        ui.label("Users").classes("text-lg font-semibold")
                        ui.space()
                        ui.button("Add user", icon="person_add", on_click=self._add_user_dialog) \
                            .props("flat").mark("user-add")
                    self.user_list = ui.column().classes("w-full gap-1")
                await self._show_users()
            if self.principal.is_admin:
                McpSection(self.lantern).build()
                SourcesSection(self.lantern).build()
                self._providers()
                self._limits()

    def _account(self) -> None:
        """Who you are, and how to leave."""
        with ui.card().classes("w-full"):
            ui.label("Account").classes("text-lg font-semibold")
            if auth.shared():
                with ui.row().classes("items-center gap-3"):
                    ui.icon("person")
                    ui.label(f"{self.principal.name} · {self.principal.role}").mark("account-name")
                    ui.space()
                    ui.button("Log out", icon="logout", on_click=lambda: ui.navigate.to("/logout")).props("flat")
            else:
                ui.label("This Lantern listens on loopback only: one local user, no login, and the API needs "
                         "no token. Bind to another address with accounts to share it (see README).") \
                    .classes("text-sm opacity-80").mark("account-local")

    async def _show_tokens(self) -> None:
        """List the user's tokens, newest first."""
        tokens = await self.lantern.accounts.tokens(self.principal.user_id)
        self.token_list.clear()
        with self.token_list:
            if not tokens:
                ui.label("No tokens yet.").classes("opacity-60 text-sm").mark("tokens-empty")
            for token in tokens:
                with ui.row().classes("w-full items-center gap-3 text-sm").mark(f"token-{token.name}"):
                    expired = token.expires_at is not None and aware(token.expires_at) <= utcnow()
                    ui.icon("key_off" if token.revoked_at or expired else "key").classes("opacity-70")
                    ui.label(token.name).classes("font-medium")
                    ui.label(f"{token.prefix}…").classes("font-mono opacity-70")
                    used = f"last used {token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never used"
                    until = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "no expiry"
                    quiet = "" if token.record_calls else " · /v1 calls not recorded"
                    ui.label(f"created {token.created_at:%Y-%m-%d} · {used} · {until}{quiet}").classes("opacity-60")
                    ui.space()
                    if token.revoked_at or expired:
                        ui.label("revoked" if token.revoked_at else "expired").classes("text-negative")
                    else:
                        icon_button("delete", f"Revoke {token.name}", partial(self._revoke, token.id, token.name),
                                    marker=f"revoke-{token.name}")

    async def _create_token(self, name: ui.input, lifetime: ui.select, record: ui.checkbox) -> None:
        """Create a token and show its secret this once."""
        try:
            _token, secret = await self.lantern.accounts.create_token(self.principal.user_id, name.value or "",
                                                                      days=lifetime.value or None,
                                                                      record=bool(record.value))
        except LanternError as exc:
            ui.notify(str(exc), type="warning")
            return
        name.value = ""
        with ui.dialog() as dialog, ui.card().classes("w-[32rem]").mark("token-dialog"):
            ui.label("Copy your new token now").classes("text-lg font-semibold")
            ui.label("It will not be shown again. Lantern keeps only a hash of it.").classes("text-sm opacity-70")
            ui.code(secret, language="text").classes("w-full").mark("token-secret")
            ui.button("Done", on_click=dialog.close).props("unelevated")
        dialog.open()
        await self._show_tokens()

    async def _revoke(self, token_id: str, name: str) -> None:
        """Revoke a token at once."""
        try:
            await self.lantern.accounts.revoke_token(self.principal.user_id, token_id)
        except LanternError as exc:
            ui.notify(str(exc), type="warning")
            return
        ui.notify(f"Token {name} revoked.")
        await self._show_tokens()

    async def _show_users(self) -> None:
        """List the accounts that can log in."""
        users = await self.lantern.accounts.users()
        self.user_list.clear()
        with self.user_list:
            for user in users:
                with ui.row().classes("w-full items-center gap-3 text-sm").mark(f"user-{user.name}"):
                    ui.icon("admin_panel_settings" if user.role == "admin" else "person").classes("opacity-70")
                    ui.label(user.name).classes("font-medium")
                    ui.label(user.role).classes("opacity-70")
                    ui.label(f"since {user.created_at:%Y-%m-%d}").classes("opacity-60")
                    ui.space()
                    icon_button("password", f"Reset password of {user.name}",
                                partial(self._password_dialog, user.name), marker=f"passwd-{user.name}")
                    if user.id != self.principal.user_id:  # an admin cannot lock themselves out
                        icon_button("person_remove", f"Remove {user.name}", partial(self._remove_user, user.name),
                                    marker=f"remove-{user.name}")

    def _add_user_dialog(self) -> None:
        """Ask for a new account's name, password and role."""
        with ui.dialog() as dialog, ui.card().classes("w-96").mark("user-dialog"):
            ui.label("Add user").classes("text-lg font-semibold")
            name = ui.input("Name").props("dense outlined").classes("w-full").mark("new-user-name")
            password = ui.input(f"Password (at least {MIN_LENGTH} characters)", password=True,
                                password_toggle_button=True).props("dense outlined").classes("w-full") \
                .mark("new-user-password")
            role = ui.select(["member", "admin"], value="member", label="Role").classes("w-full")

            async def add() -> None:
                try:
                    await self.lantern.accounts.add_user(name.value or "", password.value or "", role.value)
                except LanternError as exc:
                    ui.notify(str(exc), type="warning")
                    return
                dialog.close()
                ui.notify(f"User {name.value} added.")
                await self._show_users()

            dialog_actions(dialog, "Add", add, marker="new-user-add")
        dialog.open()

    def _password_dialog(self, name: str) -> None:
        """Set a new password; the user's logins end."""
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(f"New password for {name}").classes("text-lg font-semibold")
            password = ui.input("Password", password=True, password_toggle_button=True) \
                .props("dense outlined").classes("w-full").mark("reset-password")

            async def save() -> None:
                try:
                    await self.lantern.accounts.set_password(name, password.value or "")
                except LanternError as exc:
                    ui.notify(str(exc), type="warning")
                    return
                dialog.close()
                ui.notify(f"Password of {name} changed; their logins have ended.")

            dialog_actions(dialog, "Save", save, marker="reset-save")
        dialog.open()

    async def _remove_user(self, name: str) -> None:
        """Disable an account (its data stays)."""
        try:
            await self.lantern.accounts.remove_user(name)
        except LanternError as exc:
            ui.notify(str(exc), type="warning")
            return
        ui.notify(f"User {name} removed; their data is kept.")
        await self._show_users()

    def _providers(self) -> None:
        """Which models are usable and why not; keys come from the environment only."""
        with ui.card().classes("w-full").mark("providers-section"):
            ui.label("Providers").classes("text-lg font-semibold")
            ui.label("Provider keys are read from the environment (or .env) only and never stored, shown or "
                     "logged by Lantern. Set them and restart to change.").classes("text-sm opacity-70")
            rows = [{"id": m.id, "available": "yes" if m.available else "no", "reason": m.reason or ""}
                    for m in self.lantern.registry.list_models()]
            ui.table(columns=[{"name": "id", "label": "Model", "field": "id", "align": "left"},
                              {"name": "available", "label": "Available", "field": "available"},
                              {"name": "reason", "label": "Why not", "field": "reason", "align": "left"}],
                     rows=rows, row_key="id").props("dense flat").classes("w-full")
            ui.label("Prices (USD per million tokens; LANTERN_PRICES adds or overrides)").classes("font-medium mt-2")
            ui.table(columns=[{"name": "model", "label": "Model", "field": "model", "align": "left"},
                              {"name": "input", "label": "Input", "field": "input"},
                              {"name": "output", "label": "Output", "field": "output"}],
                     rows=[{"model": k, "input": v[0], "output": v[1]} for k, v in sorted(pricing.PRICES.items())],
                     row_key="model").props("dense flat").classes("w-full")

    def _limits(self) -> None:
        """The limits this server enforces (from the environment)."""
        s = self.lantern.settings
        with ui.card().classes("w-full"):
            ui.label("Limits").classes("text-lg font-semibold")
            for label, value in [("Runs per user per minute (shared mode)", s.runs_per_minute or "no limit"),
                                 ("Tokens per run", s.max_run_tokens or "no cap"),
                                 ("Failed logins per name per minute", s.login_attempts_per_minute),
                                 ("Session length (hours)", s.session_hours)]:
                with ui.row().classes("gap-2 text-sm"):
                    ui.label(label).classes("opacity-70")
                    ui.label(str(value))
