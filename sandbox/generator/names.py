"""French names and ministry structure for the synthetic ministry (invented combinations, real shapes)."""

from __future__ import annotations

GIVEN_FEMALE = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Sophie", "Christine", "Valérie", "Sandrine",
    "Véronique", "Céline", "Stéphanie", "Aurélie", "Émilie", "Julie", "Camille", "Léa", "Chloé", "Manon",
    "Inès", "Clémence", "Hélène", "Françoise", "Geneviève", "Anaïs", "Gaëlle", "Maëlle", "Noémie", "Zoé",
    "Océane", "Laëtitia", "Bérénice", "Agnès", "Thérèse", "Joëlle", "Anne-Sophie", "Marie-Claire",
    "Marie-Hélène", "Anne-Laure", "Marie-Ève", "Louise", "Alice", "Juliette", "Élodie", "Audrey", "Claire",
    "Pauline", "Margaux", "Lucie", "Mathilde", "Fatima", "Aïcha", "Yasmine", "Nadia", "Amélie", "Sarah",
    "Laure", "Delphine", "Karine", "Corinne", "Brigitte", "Martine", "Danièle", "Josiane", "Maïté",
)

GIVEN_MALE = (
    "Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "Christophe", "Patrick", "Frédéric", "Laurent",
    "Stéphane", "Éric", "Olivier", "Thierry", "Julien", "Sébastien", "Vincent", "François", "Jérôme", "Benoît",
    "Antoine", "Thomas", "Hugo", "Lucas", "Mathéo", "Noé", "Raphaël", "Gaël", "Loïc", "Anaël", "Joël",
    "Hervé", "Rémi", "Cédric", "Aurélien", "Grégoire", "Jean-Baptiste", "Jean-François", "Jean-Marc",
    "Jean-Luc", "Pierre-Yves", "Marc-Antoine", "Paul", "Louis", "Arthur", "Gabriel", "Léo", "Maxime",
    "Mohamed", "Karim", "Mehdi", "Youssef", "Bruno", "Didier", "Gérard", "Yves", "Denis", "Fabrice",
    "Guillaume", "Baptiste", "Quentin", "Timothée", "Côme", "Anatole", "Ghislain",
)

SURNAMES = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
    "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard",
    "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André",
    "Mercier", "Blanc", "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia",
    "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson",
    "Marchand", "Duval", "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier",
    "Brun", "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud",
    "Martinez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron",
    "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix", "Olivier", "Philippe",
    "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet", "Rolland", "Leclercq", "Guillaume", "Lecomte",
    "Hoarau", "Le Goff", "Le Gall", "Le Roux", "Le Bihan", "Le Floch", "Le Corre", "Le Bris", "Le Guen",
    "Kerbrat", "Quéméner", "Bénard", "Grondin", "Jégou", "Prévost", "Mallet", "Chauvin", "Bouvier", "Hébert",
)

# Particles, apostrophes and compound surnames: they break naive e-mail derivation and display-name matching.
SURNAMES_TRICKY = (
    "de La Fontaine", "du Pont", "de Saint-Exupéry", "d'Almeida", "d'Estienne d'Orves", "N'Diaye", "N'Guessan",
    "O'Neill", "Da Silva", "Dos Santos", "de Gaulle", "Le Pen-Duval", "Lévy-Strauss", "Martin-Dubois",
    "Bernard-Lefèvre", "de Villepin", "du Bellay", "de Beauvoir", "L'Hôte", "D'Hondt", "Van der Berg",
    "El Amrani", "Ben Saïd", "Abd-El-Kader", "Saint-Just", "de Montaigne-Chassagne",
)

# Names written in a non-Latin script in the directory, with the Latin form the mail system was given.
NON_LATIN = (
    ("Анна", "Иванова", "Anna", "Ivanova"),
    ("Дмитрий", "Соколов", "Dmitri", "Sokolov"),
    ("Νίκος", "Παπαδόπουλος", "Nikos", "Papadopoulos"),
    ("Ελένη", "Γεωργίου", "Eleni", "Georgiou"),
    ("王", "伟", "Wei", "Wang"),
    ("李", "娜", "Na", "Li"),
    ("محمد", "بن علي", "Mohamed", "Ben Ali"),
    ("فاطمة", "الزهراء", "Fatima", "Zahra"),
    ("Nguyễn", "Văn An", "An", "Nguyen"),
    ("Trần", "Thị Mai", "Mai", "Tran"),
)

# Directions → sous-directions → bureaux (codes like a ministry's organisation chart).
DIRECTIONS = (
    ("SG", "Secrétariat général", ("SDRH", "SDAF", "SDAJ")),
    ("DNUM", "Direction du numérique", ("SDI", "SDE", "SDSSI")),
    ("DAJ", "Direction des affaires juridiques", ("SDCP", "SDDP")),
    ("DGPAT", "Direction générale des patrimoines", ("SDMH", "SDARCH", "SDMUS")),
    ("DGCA", "Direction générale de la création artistique", ("SDSPEC", "SDARTS")),
    ("DGMIC", "Direction générale des médias et des industries culturelles", ("SDLIV", "SDPRESSE")),
    ("DRAC-IDF", "Direction régionale des affaires culturelles d'Île-de-France", ("POLE-PAT", "POLE-CREA")),
    ("DRAC-BRE", "Direction régionale des affaires culturelles de Bretagne", ("POLE-PAT", "POLE-CREA")),
    ("DRAC-REU", "Direction des affaires culturelles de La Réunion", ("POLE-PAT",)),
    ("IGAC", "Inspection générale des affaires culturelles", ("MISSIONS",)),
)
BUREAU_COUNT = 4

TITLES = (
    "Chargé de mission", "Cheffe de bureau", "Chef de bureau", "Adjointe au chef de bureau", "Gestionnaire",
    "Secrétaire administrative", "Attaché d'administration", "Ingénieur d'études", "Chef de projet",
    "Conseillère", "Rédacteur", "Assistant de direction", "Sous-directrice", "Directeur de projet",
)

EXTERNAL_DOMAINS = ("gmail.com", "orange.fr", "partenaire-conseil.fr", "univ-exemple.fr", "cabinet-audit.fr",
                    "wanadoo.fr", "region-exemple.fr", "outlook.com")

TOPICS = (
    "Point hebdo", "Comité de pilotage", "Réunion d'équipe", "Point d'avancement", "Comité de direction",
    "Stand-up", "Revue de projet", "Réunion de service", "Point RH", "Comité technique", "Atelier",
    "Comité de suivi", "Réunion budgétaire", "Point juridique", "Cellule de crise", "Séminaire",
    "Réunion bilatérale", "Comité des programmes", "Point presse", "Réunion inter-directions",
)
