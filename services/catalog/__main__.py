"""`python -m services.catalog`: serve the catalog with settings from the environment."""

from services.catalog.app import SERVICE, create_app
from services.catalog.settings import CatalogSettings
from shared.app_factory import run_service

if __name__ == "__main__":
    run_service(SERVICE, CatalogSettings, create_app)
