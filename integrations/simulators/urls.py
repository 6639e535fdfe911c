from django.urls import path

from integrations.simulators import views

app_name = "simulators"

urlpatterns = [
    path("", views.status, name="status"),
    path("accounting/salary-base", views.salary_base, name="salary-base"),
    path("accounting/payouts", views.payouts, name="payouts"),
    path("accounting/payouts/list", views.payout_list, name="payout-list"),
    path("bonus/compute", views.bonus_compute, name="bonus-compute"),
    path("bonus/rejections", views.bonus_rejection, name="bonus-rejections"),
]
