"""The `kumeo` component provider: serves `kumeo:index:Workflow` to the Pulumi engine (see PulumiPlugin.yaml)."""

from kumeo_iac.components import serve

if __name__ == "__main__":
    serve()
