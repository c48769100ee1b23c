"""Windows time-zone names (Graph, Outlook) and their IANA equivalents, for the zones a ministry meets in."""

from __future__ import annotations

# From the Unicode CLDR windowsZones table (territory 001 rows), restricted to metropolitan France, the overseas
# territories and the neighbours a ministry's calendars actually carry.
WINDOWS_TO_IANA: dict[str, str] = {
    "Romance Standard Time": "Europe/Paris",
    "W. Europe Standard Time": "Europe/Berlin",
    "GMT Standard Time": "Europe/London",
    "UTC": "Etc/UTC",
    "SA Eastern Standard Time": "America/Cayenne",
    "SA Western Standard Time": "America/La_Paz",
    "Mauritius Standard Time": "Indian/Mauritius",
    "Arabian Standard Time": "Asia/Dubai",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Atlantic Standard Time": "America/Halifax",
    "Saint Pierre Standard Time": "America/Miquelon",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Eastern Standard Time": "America/New_York",
}

# IANA zones of French territories, mapped to the Windows zone Outlook uses for them (CLDR territory rows).
IANA_TO_WINDOWS: dict[str, str] = {
    "Europe/Paris": "Romance Standard Time",
    "Etc/UTC": "UTC",
    "UTC": "UTC",
    "America/Cayenne": "SA Eastern Standard Time",
    "America/Guadeloupe": "SA Western Standard Time",
    "America/Martinique": "SA Western Standard Time",
    "Indian/Reunion": "Mauritius Standard Time",
    "Indian/Mayotte": "E. Africa Standard Time",
    "Pacific/Noumea": "Central Pacific Standard Time",
    "Pacific/Tahiti": "Hawaiian Standard Time",
    "America/Miquelon": "Saint Pierre Standard Time",
    "Europe/Berlin": "W. Europe Standard Time",
    "Europe/London": "GMT Standard Time",
}
