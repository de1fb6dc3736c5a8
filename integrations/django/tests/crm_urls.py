"""Django CRM's URLs, with the webhook endpoint of salesbot_django in front."""

from django.urls import include, path
from webcrm.urls import urlpatterns as crm

urlpatterns = [path("salesbot/", include("salesbot_django.urls")), *crm]
