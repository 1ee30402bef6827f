"""``path("hotconf/", include("hotconf.integrations.django.urls"))``: health and metrics."""

from django.urls import path

from . import views

urlpatterns = [
    path("health", views.health, name="hotconf-health"),
    path("metrics", views.metrics, name="hotconf-metrics"),
]
