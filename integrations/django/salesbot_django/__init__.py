"""salesbot in a Django project: bots as users of the Owner field, routing after commit.

The host's models are not changed: ``salesbot_django.conf`` reads which model is which
entity from the ``SALESBOT`` setting, ``salesbot_django.django_crm`` is that mapping for
Django CRM, and ``salesbot_django.routing`` hands a save to salesbot and writes its picks
back.
"""
