from __future__ import annotations

from django.urls import path

from integrations.api import views

urlpatterns = [
    path("llm-models", views.LLMModelListCreateView.as_view(), name="api-llm-models"),
    path("llm-models/test", views.LLMModelTestView.as_view(), name="api-llm-models-test"),
    path(
        "llm-models/<str:model_id>",
        views.LLMModelDetailView.as_view(),
        name="api-llm-model-detail",
    ),
    path(
        "llm-models/<str:model_id>/test",
        views.LLMModelSavedTestView.as_view(),
        name="api-llm-model-test",
    ),
    path("users/me/provider-keys", views.ProviderKeyListView.as_view(), name="api-provider-keys"),
    path(
        "users/me/provider-keys/<str:provider_type>",
        views.ProviderKeyDetailView.as_view(),
        name="api-provider-key-detail",
    ),
]
