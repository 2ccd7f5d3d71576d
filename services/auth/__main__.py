"""`python -m services.auth`: serve the auth service with settings from the environment."""

from services.auth.app import SERVICE, create_app
from services.auth.settings import AuthSettings
from shared.app_factory import run_service

if __name__ == "__main__":
    run_service(SERVICE, AuthSettings, create_app)
