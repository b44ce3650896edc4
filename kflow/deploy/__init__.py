"""Running kflow in the cluster on a schedule: CronJob and RBAC manifests, the project bundle.

Library code: it renders objects and moves bytes on storage; it never applies anything
to a cluster (users run ``kubectl apply``) and never imports the CLI.
"""
