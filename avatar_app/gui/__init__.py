"""The desktop app (`avatar app`): PySide6 widgets around the player core. Only this package
imports Qt; every frame it shows or records is made by `avatar_app.player.Player`."""
