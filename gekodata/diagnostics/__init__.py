"""What a run can tell about its data and itself: the efficiency report, data maps, the noise
guard's suspects, and the ``python -m gekodata`` command line. Reads the store, the policy and
the epoch records; never plans or trains."""
