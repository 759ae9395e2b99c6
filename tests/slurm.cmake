# Slurm batch scripts (slurm/, issue 7) on a real single-node Slurm started for the tests
# (tests/slurm_cluster.sh: private munged + slurmctld + slurmd in a temporary directory, stopped
# by PID). Label `slurm`; needs root and Debian's slurmctld slurmd slurm-client munge
# (scripts/setup.sh --test). One cluster for all of them: fixture slurm_cluster, set up by
# slurm_cluster_up and torn down by slurm_cluster_down; RESOURCE_LOCK runs the jobs one at a time
# so that their timeouts measure the job, not a queue.
set(SLURM_ENV_FILE ${CMAKE_CURRENT_BINARY_DIR}/slurm-cluster.env)
set(SLURM_CLUSTER_SH ${CMAKE_CURRENT_SOURCE_DIR}/slurm_cluster.sh)
set(SLURM_JOBS_SH ${CMAKE_CURRENT_SOURCE_DIR}/slurm_jobs.sh)

add_test(NAME slurm_cluster_up COMMAND bash ${SLURM_CLUSTER_SH} up ${SLURM_ENV_FILE})
set_tests_properties(slurm_cluster_up PROPERTIES LABELS "slurm" TIMEOUT 60
  FIXTURES_SETUP slurm_cluster RESOURCE_LOCK gptoss_slurm)
add_test(NAME slurm_cluster_down COMMAND bash ${SLURM_CLUSTER_SH} down ${SLURM_ENV_FILE})
set_tests_properties(slurm_cluster_down PROPERTIES LABELS "slurm" TIMEOUT 60
  FIXTURES_CLEANUP slurm_cluster RESOURCE_LOCK gptoss_slurm)

# slurm_job_test(NAME TIMEOUT MODE [ARG])
function(slurm_job_test name timeout)
  add_test(NAME ${name} COMMAND bash ${SLURM_JOBS_SH} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "slurm" TIMEOUT ${timeout}
    FIXTURES_REQUIRED slurm_cluster RESOURCE_LOCK gptoss_slurm
    ENVIRONMENT "GPTOSS_BIN=${GPTOSS_BIN};SLURM_ENV=${SLURM_ENV_FILE};SLURM_WORK=${CMAKE_CURRENT_BINARY_DIR}/slurm-work;SLURM_SCRIPTS=${PROJECT_SOURCE_DIR}/slurm;PY3=${PY3};SYNTH_SPARSE=$<TARGET_FILE:synth_sparse>")
endfunction()

slurm_job_test(slurm_export_parity_srun 180 export_parity srun)
slurm_job_test(slurm_export_parity_mpirun 180 export_parity mpirun)
slurm_job_test(slurm_per_stage_parity 180 per_stage)
slurm_job_test(slurm_corrupt_checkpoint 120 corrupt)
slurm_job_test(slurm_parity_fail 120 parity_fail)
slurm_job_test(slurm_rank_failure 120 rank_failure)
slurm_job_test(slurm_sigterm 150 sigterm)
slurm_job_test(slurm_time_limit 200 time_limit)
slurm_job_test(slurm_sized_scripts 180 sized_scripts)
# SIGUSR1 mid-export -> the job requeues itself -> export --resume, byte-identical; ~1 min (the
# requeued job waits the test cluster's cred_expire=15 s)
slurm_job_test(slurm_requeue_resume 240 requeue)
