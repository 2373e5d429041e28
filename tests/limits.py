"""Safety limits for tests whose random changes must never be refused."""

NO_LIMITS = {
    "max_groups_removed": None, "max_groups_removed_percent": None,
    "max_members_removed": None, "max_members_removed_percent": None,
    "max_contacts_lost": None, "refuse_empty": False, "max_public_groups_added": None,
    "max_public_contacts_gained": None, "max_public_contacts_gained_percent": None,
    "max_contacts_gained": None,
}
