"""Print the README's settings table from the Settings model (run after adding a setting)."""

from app.config import ENV_PREFIX, PROJECT_ROOT, Settings


def main() -> None:
    print("| Variable | Default | Meaning |")
    print("|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()
        if hasattr(default, "is_relative_to") and default.is_relative_to(PROJECT_ROOT):
            default = default.relative_to(PROJECT_ROOT)
        shown = "—" if default in (None, {}) else f"`{default}`"
        if name.endswith(("password", "passphrase")):
            shown = "— (secret)"
        print(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description or ''} |")


if __name__ == "__main__":
    main()
