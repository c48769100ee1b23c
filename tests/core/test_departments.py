"""The department tree and the nearest names of a misspelt department or e-mail."""

from __future__ import annotations

from core.departments import NO_DEPARTMENT, DepartmentNode, department_tree, known_departments, nearest_names


def test_the_tree_counts_each_unit_with_its_sub_units_parents_first() -> None:
    tree = department_tree([("DNUM/SDI/B2", 2, 1), ("DNUM/SDI/B1", 3, 0), ("DNUM", 1, 0), (None, 2, 0),
                            ("SG/B1", 4, 0), ("", 1, 0), ("DNUMERIQUE", 5, 0)])
    assert tree == [
        DepartmentNode("DNUM", "DNUM", 0, 6, 1, 1),
        DepartmentNode("DNUM/SDI", "SDI", 1, 5, 0, 1),
        DepartmentNode("DNUM/SDI/B1", "B1", 2, 3, 3, 0),
        DepartmentNode("DNUM/SDI/B2", "B2", 2, 2, 2, 1),
        DepartmentNode("DNUMERIQUE", "DNUMERIQUE", 0, 5, 5, 0),   # a prefix of the name is not a parent
        DepartmentNode("SG", "SG", 0, 4, 0, 0),
        DepartmentNode("SG/B1", "B1", 1, 4, 4, 0),
        DepartmentNode(NO_DEPARTMENT, NO_DEPARTMENT, 0, 3, 3, 0),
    ]


def test_known_names_are_every_unit_and_the_nearest_ones_ignore_case() -> None:
    known = known_departments(["DNUM/SDI/B1", "SG/SDAF", None])
    assert known == {"DNUM", "DNUM/SDI", "DNUM/SDI/B1", "SG", "SG/SDAF"}
    assert nearest_names("DNUN", known) == ["DNUM"]
    assert nearest_names("sg/sdaf", known)[0] == "SG/SDAF"
    assert nearest_names("XYZZY-42", known) == []
    assert nearest_names("jean.dupomt@culture.gouv.fr", ["jean.dupont@culture.gouv.fr", "jeanne.roux@culture.gouv.fr",
                                                         "paul.martin@culture.gouv.fr"], count=1) == [
        "jean.dupont@culture.gouv.fr"]
