"""Vars plugin for many sites in one inventory directory.

``ansible-playbook -i inventory/sites PLAYBOOK`` reads every ``inventory/sites/<site>/
hosts.yml``, but Ansible loads ``group_vars/`` and ``host_vars/`` only next to the
inventory source it was given (``inventory/sites/``), not next to each site's file. This
plugin also loads each site directory's ``group_vars/`` and ``host_vars/`` (exactly as the
built-in ``host_group_vars`` does for one inventory), so one site's files work alone
(``-i inventory/sites/acme``) and with all the others (``-i inventory/sites``).

Groups are global in Ansible: put a site's variables in ``group_vars/<site group>/``,
never in ``group_vars/all`` (that would apply to every site). Loaded from the
``vars_plugins`` directory next to the playbooks, and from ansible.cfg's
``vars_plugins`` for ad-hoc commands.
"""

from __future__ import annotations

import os

from ansible.plugins.vars.host_group_vars import VarsModule as HostGroupVars
from ansible.utils.vars import combine_vars

DOCUMENTATION = """
    name: hamod_sites
    short_description: group_vars and host_vars of every site directory of an inventory
    description:
      - For an inventory directory holding one directory per site (C(<site>/hosts.yml),
        C(<site>/group_vars/), C(<site>/host_vars/)), loads each site's group_vars and
        host_vars as the built-in host_group_vars plugin does for a single inventory.
    options:
      stage:
        ini:
          - key: stage
            section: vars_hamod_sites
        env:
          - name: ANSIBLE_VARS_PLUGIN_STAGE
    extends_documentation_fragment:
      - vars_plugin_staging
"""

SKIP = {"group_vars", "host_vars"}


class VarsModule(HostGroupVars):
    """host_group_vars, once per site directory under the inventory source."""

    REQUIRES_ENABLED = False

    def get_vars(self, loader, path, entities, cache=True):  # type: ignore[no-untyped-def]
        if not os.path.isdir(path):
            return {}
        data: dict[str, object] = {}
        for site in sorted(os.listdir(path)):
            site_dir = os.path.join(path, site)
            if site in SKIP or site.startswith(".") or not os.path.isdir(site_dir):
                continue
            if not any(os.path.isdir(os.path.join(site_dir, d)) for d in SKIP):
                continue
            data = combine_vars(data, super().get_vars(loader, site_dir, entities, cache))
        return data
