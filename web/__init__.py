"""HTTP pages for finance and helpdesk, over db/ and core/."""
