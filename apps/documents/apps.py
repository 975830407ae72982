from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """The MongoDB-backed data of the seed: documents (files), usage patterns, AI training data and models.

    No models: everything here lives in MongoDB (and the files in Django's storage).
    """

    name = "apps.documents"
    label = "documents"
    verbose_name = "Documents, usage and AI data"
