"""Sub-commands of the `ragkit` command line; each module registers its own with `register(...)`."""
