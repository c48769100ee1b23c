"""The web application (web.app.create_app): finance dashboard, helpdesk, migration console and the public link
redirect, behind ProConnect, over db/ and core/."""
