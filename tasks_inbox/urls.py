from django.urls import path

from tasks_inbox import absence_views, bulk_views, profile_views, views

app_name = "tasks_inbox"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/bulk-decide/", bulk_views.bulk_decide, name="bulk_decide"),
    path("inbox/absences/", absence_views.absences, name="absences"),
    path("inbox/absences/<int:pk>/end/", absence_views.absence_end, name="absence_end"),
    path("inbox/profile/", profile_views.profile, name="profile"),
    path("inbox/tasks/<int:pk>/", views.task_detail, name="task"),
    path("inbox/tasks/<int:pk>/claim/", views.claim, name="claim"),
    path("inbox/tasks/<int:pk>/release/", views.release, name="release"),
    path("inbox/tasks/<int:pk>/decide/", views.decide, name="decide"),
    path("inbox/tasks/<int:pk>/delegate/", views.delegate, name="delegate"),
]
