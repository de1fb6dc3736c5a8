"""``path("salesbot/", include("salesbot_django.urls"))``: the webhook endpoint."""

from django.urls import path

from .views import webhook

app_name = "salesbot_django"
urlpatterns = [path("webhook/", webhook, name="webhook")]
